"""The HUD HMIS CSV format, FY2024 and FY2026: files, ordered columns, types and lists.

Types follow the HMIS CSV Format Specifications: ``S#`` a string of at most # characters,
``I`` a non-negative integer (often from a named list), ``D`` a date ``YYYY-MM-DD``, ``T`` a
date and time ``YYYY-MM-DD hh:mm:ss``, ``M`` money with two decimals.

FY2024 column order is the order of the FY2024 v1.3 files (all 24 headers, checked against a
real export). FY2026 v1.0 differs from FY2024 only where DOMAIN.md lists it: Client drops the
nine gender columns, gains ``Sex`` (list 4.21, placed after ``DOBDataQuality``) and renames
``HispanicLatinaeo`` to ``HispanicLatinao``; Enrollment drops ``SexualOrientation``,
``SexualOrientationOther``, ``TranslationNeeded``, ``PreferredLanguage`` and
``PreferredLanguageDifferent`` and gains ``MentalHealthConsultation`` (before
``DateCreated``); Export ``SourceID`` grows to 350 characters.

List constraints are given where the list is short and stable; long lists (living situations,
destinations, funders…) are only checked to be integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# ---- versions -------------------------------------------------------------------------------

FY2024 = "2024"
FY2026 = "2026"
VERSIONS: tuple[str, ...] = (FY2024, FY2026)
CSV_VERSION_LABEL: Mapping[str, str] = MappingProxyType({FY2024: "2024 v1.3", FY2026: "2026 v1.0"})
"""The ``CSVVersion`` value the hub writes for each version."""


def parse_csv_version(value: str) -> str | None:
    """The version family (``"2024"`` / ``"2026"``) of an Export.csv ``CSVVersion``, or None.

    Accepts ``2024 v1.3``, ``FY2024``, ``FY2026 v1.0``, ``2026``; anything else is unknown.
    """
    text = value.strip().upper().removeprefix("FY").strip()
    for family in VERSIONS:
        if text == family or text.startswith(family + " ") or text.startswith(family + "V"):
            return family
    return None


# ---- lists ----------------------------------------------------------------------------------


def _codes(*values: int) -> frozenset[str]:
    return frozenset(str(v) for v in values)


LISTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "1.7": _codes(0, 1, 99),  # No / Yes / Data not collected
        "1.8": _codes(0, 1, 8, 9, 99),  # No / Yes / doesn't know / prefers not / not collected
        "0/1": _codes(0, 1),
        "DQ": _codes(1, 2, 8, 9, 99),  # 3.01.5, 3.02.2, 3.03.2 data quality
        "NONE": _codes(8, 9, 99),  # RaceNone, GenderNone (1.6)
        "4.21": _codes(0, 1, 8, 9, 99),  # Sex (FY2026)
        "3.15.1": _codes(1, 2, 3, 4, 5, 99),  # RelationshipToHoH
        "1.3": _codes(5, 6, 7, 8, 9, 10),  # DisabilityType
        "4.10.2": _codes(0, 1, 2, 3, 8, 9, 99),  # DisabilityResponse (incl. substance use list)
        "5.03.1": _codes(1, 2, 3, 5, 6),  # DataCollectionStage
        "4.11.A": _codes(1, 2, 3, 4, 8, 9, 99),  # WhenOccurred
        "R7.1": _codes(1, 2, 3, 4, 5, 8, 9, 99),  # health status
        "1.2": _codes(1, 2, 3, 4),  # SourceType
        "1.1": _codes(1, 2, 3, 4),  # ExportPeriodType
        "1.4": _codes(1, 2, 3),  # ExportDirective
        "1.5": _codes(1, 2, 3, 4),  # HashStatus
        "2.02.6": _codes(0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14),  # ProjectType
        "2.02.D": _codes(1, 2, 3),  # HousingType
        "2.02.A": _codes(1, 2),  # RRHSubType
        "2.03.4": _codes(1, 2, 3, 99),  # GeographyType
        "2.07.4": _codes(1, 3, 4),  # HouseholdType
        "2.07.A": _codes(1, 2, 3),  # Availability
        "2.07.B": _codes(1, 2, 3),  # ESBedType
        "2.08.1": _codes(0, 1, 2),  # HMISParticipationType
        "RecordType": _codes(141, 142, 143, 144, 151, 152, 161, 200, 210, 300),
        "4.19.3": _codes(1, 2, 3),  # AssessmentType
        "4.19.4": _codes(1, 2),  # AssessmentLevel
        "4.19.7": _codes(1, 2),  # PrioritizationStatus
        "4.20.2": _codes(*range(1, 19)),  # Event
    }
)
"""HUD lists by number (or a short name), as the string codes a CSV carries."""

NAMED_LISTS: Mapping[str, str] = MappingProxyType(
    {"1.7": "No/Yes", "1.8": "No/Yes/Reasons", "DQ": "data quality", "4.21": "Sex"}
)


# ---- columns ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One column of an HMIS CSV file."""

    name: str
    type: str
    length: int = 0
    values: frozenset[str] | None = None
    required: bool = False
    list_name: str = ""

    @property
    def label(self) -> str:
        """The spec's type label (``S32``, ``I``, ``D`` …)."""
        return f"S{self.length}" if self.type == "S" else self.type


def _col(text: str) -> Column:
    """Parse ``Name:TYPE[:list][!]`` (``!`` = required, not null)."""
    required = text.endswith("!")
    parts = text.rstrip("!").split(":")
    name, typ = parts[0], parts[1]
    list_name = parts[2] if len(parts) > 2 else ""
    values = LISTS[list_name] if list_name else None
    if typ.startswith("S"):
        return Column(name, "S", int(typ[1:]), None, required)
    return Column(name, typ, 0, values, required, list_name)


_TAIL = ("DateCreated:T!", "DateUpdated:T!", "UserID:S32!", "DateDeleted:T", "ExportID:S32!")
_TAIL_NO_USER = ("DateCreated:T!", "DateUpdated:T!", "DateDeleted:T", "ExportID:S32!")

# fmt: off
_FY2024_TEXT: dict[str, tuple[str, ...]] = {
    "Export": (
        "ExportID:S32!", "SourceType:I:1.2!", "SourceID:S32", "SourceName:S50",
        "SourceContactFirst:S50", "SourceContactLast:S50", "SourceContactPhone:S10",
        "SourceContactExtension:S5", "SourceContactEmail:S320", "ExportDate:T!",
        "ExportStartDate:D!", "ExportEndDate:D!", "SoftwareName:S50!", "SoftwareVersion:S50",
        "CSVVersion:S50!", "ExportPeriodType:I:1.1!", "ExportDirective:I:1.4!",
        "HashStatus:I:1.5!", "ImplementationID:S200!",
    ),
    "Organization": (
        "OrganizationID:S32!", "OrganizationName:S200!", "VictimServiceProvider:I:0/1!",
        "OrganizationCommonName:S200", *_TAIL,
    ),
    "User": (
        "UserID:S32!", "UserFirstName:S50", "UserLastName:S50", "UserPhone:S10",
        "UserExtension:S5", "UserEmail:S320", *_TAIL_NO_USER,
    ),
    "Project": (
        "ProjectID:S32!", "OrganizationID:S32!", "ProjectName:S200!", "ProjectCommonName:S200",
        "OperatingStartDate:D!", "OperatingEndDate:D", "ContinuumProject:I:1.7!",
        "ProjectType:I:2.02.6", "HousingType:I:2.02.D", "RRHSubType:I:2.02.A",
        "ResidentialAffiliation:I:1.7", "TargetPopulation:I", "HOPWAMedAssistedLivingFac:I",
        "PITCount:I", *_TAIL,
    ),
    "Funder": (
        "FunderID:S32!", "ProjectID:S32!", "Funder:I!", "OtherFunder:S100", "GrantID:S100",
        "StartDate:D!", "EndDate:D", *_TAIL,
    ),
    "ProjectCoC": (
        "ProjectCoCID:S32!", "ProjectID:S32!", "CoCCode:S6!", "Geocode:S6", "Address1:S100",
        "Address2:S100", "City:S50", "State:S2", "ZIP:S5", "GeographyType:I:2.03.4", *_TAIL,
    ),
    "Inventory": (
        "InventoryID:S32!", "ProjectID:S32!", "CoCCode:S6!", "HouseholdType:I:2.07.4!",
        "Availability:I:2.07.A", "UnitInventory:I!", "BedInventory:I!", "CHVetBedInventory:I",
        "YouthVetBedInventory:I", "VetBedInventory:I", "CHYouthBedInventory:I",
        "YouthBedInventory:I", "CHBedInventory:I", "OtherBedInventory:I", "ESBedType:I:2.07.B",
        "InventoryStartDate:D!", "InventoryEndDate:D", *_TAIL,
    ),
    "Affiliation": ("AffiliationID:S32!", "ProjectID:S32!", "ResProjectID:S32!", *_TAIL),
    "HMISParticipation": (
        "HMISParticipationID:S32!", "ProjectID:S32!", "HMISParticipationType:I:2.08.1!",
        "HMISParticipationStatusStartDate:D!", "HMISParticipationStatusEndDate:D", *_TAIL,
    ),
    "CEParticipation": (
        "CEParticipationID:S32!", "ProjectID:S32!", "AccessPoint:I:0/1!",
        "PreventionAssessment:I:0/1", "CrisisAssessment:I:0/1", "HousingAssessment:I:0/1",
        "DirectServices:I:0/1", "ReceivesReferrals:I:0/1!", "CEParticipationStatusStartDate:D!",
        "CEParticipationStatusEndDate:D", *_TAIL,
    ),
    "Client": (
        "PersonalID:S32!", "FirstName:S50", "MiddleName:S50", "LastName:S50", "NameSuffix:S50",
        "NameDataQuality:I:DQ!", "SSN:S9", "SSNDataQuality:I:DQ!", "DOB:D",
        "DOBDataQuality:I:DQ!", "AmIndAKNative:I:1.7!", "Asian:I:1.7!",
        "BlackAfAmerican:I:1.7!", "HispanicLatinaeo:I:1.7!", "MidEastNAfrican:I:1.7!",
        "NativeHIPacific:I:1.7!", "White:I:1.7!", "RaceNone:I:NONE",
        "AdditionalRaceEthnicity:S100", "Woman:I:1.7!", "Man:I:1.7!", "NonBinary:I:1.7!",
        "CulturallySpecific:I:1.7!", "Transgender:I:1.7!", "Questioning:I:1.7!",
        "DifferentIdentity:I:1.7!", "GenderNone:I:NONE", "DifferentIdentityText:S100",
        "VeteranStatus:I:1.8!", "YearEnteredService:I", "YearSeparated:I", "WorldWarII:I:1.8",
        "KoreanWar:I:1.8", "VietnamWar:I:1.8", "DesertStorm:I:1.8", "AfghanistanOEF:I:1.8",
        "IraqOIF:I:1.8", "IraqOND:I:1.8", "OtherTheater:I:1.8", "MilitaryBranch:I",
        "DischargeStatus:I", *_TAIL,
    ),
    "Enrollment": (
        "EnrollmentID:S32!", "PersonalID:S32!", "ProjectID:S32!", "EntryDate:D!",
        "HouseholdID:S32!", "RelationshipToHoH:I:3.15.1!", "EnrollmentCoC:S6",
        "LivingSituation:I", "RentalSubsidyType:I", "LengthOfStay:I", "LOSUnderThreshold:I:1.7",
        "PreviousStreetESSH:I:1.7", "DateToStreetESSH:D", "TimesHomelessPastThreeYears:I",
        "MonthsHomelessPastThreeYears:I", "DisablingCondition:I:1.8!", "DateOfEngagement:D",
        "MoveInDate:D", "DateOfPATHStatus:D", "ClientEnrolledInPATH:I:1.7",
        "ReasonNotEnrolled:I", "PercentAMI:I", "ReferralSource:I",
        "CountOutreachReferralApproaches:I", "DateOfBCPStatus:D", "EligibleForRHY:I:1.7",
        "ReasonNoServices:I", "RunawayYouth:I:1.8", "SexualOrientation:I",
        "SexualOrientationOther:S100", "FormerWardChildWelfare:I:1.8", "ChildWelfareYears:I",
        "ChildWelfareMonths:I", "FormerWardJuvenileJustice:I:1.8", "JuvenileJusticeYears:I",
        "JuvenileJusticeMonths:I", "UnemploymentFam:I:1.7", "MentalHealthDisorderFam:I:1.7",
        "PhysicalDisabilityFam:I:1.7", "AlcoholDrugUseDisorderFam:I:1.7",
        "InsufficientIncome:I:1.7", "IncarceratedParent:I:1.7", "VAMCStation:S5",
        "TargetScreenReqd:I:1.7", "TimeToHousingLoss:I", "AnnualPercentAMI:I",
        "LiteralHomelessHistory:I", "ClientLeaseholder:I:1.7", "HOHLeaseholder:I:1.7",
        "SubsidyAtRisk:I:1.7", "EvictionHistory:I", "CriminalRecord:I:1.7",
        "IncarceratedAdult:I", "PrisonDischarge:I:1.7", "SexOffender:I:1.7",
        "DisabledHoH:I:1.7", "CurrentPregnant:I:1.7", "SingleParent:I:1.7",
        "DependentUnder6:I", "HH5Plus:I:1.7", "CoCPrioritized:I:1.7", "HPScreeningScore:I",
        "ThresholdScore:I", "TranslationNeeded:I:1.8", "PreferredLanguage:I",
        "PreferredLanguageDifferent:S100", *_TAIL,
    ),
    "Exit": (
        "ExitID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "ExitDate:D!",
        "Destination:I!", "DestinationSubsidyType:I", "OtherDestination:S50",
        "HousingAssessment:I", "SubsidyInformation:I", "ProjectCompletionStatus:I",
        "EarlyExitReason:I", "ExchangeForSex:I:1.8", "ExchangeForSexPastThreeMonths:I:1.8",
        "CountOfExchangeForSex:I", "AskedOrForcedToExchangeForSex:I:1.8",
        "AskedOrForcedToExchangeForSexPastThreeMonths:I:1.8", "WorkplaceViolenceThreats:I:1.8",
        "WorkplacePromiseDifference:I:1.8", "CoercedToContinueWork:I:1.8",
        "LaborExploitPastThreeMonths:I:1.8", "CounselingReceived:I:1.7",
        "IndividualCounseling:I:1.7", "FamilyCounseling:I:1.7", "GroupCounseling:I:1.7",
        "SessionCountAtExit:I", "PostExitCounselingPlan:I:1.7", "SessionsInPlan:I",
        "DestinationSafeClient:I:1.8", "DestinationSafeWorker:I", "PosAdultConnections:I",
        "PosPeerConnections:I", "PosCommunityConnections:I", "AftercareDate:D",
        "AftercareProvided:I", "EmailSocialMedia:I:0/1", "Telephone:I:0/1",
        "InPersonIndividual:I:0/1", "InPersonGroup:I:0/1", "CMExitReason:I", *_TAIL,
    ),
    "IncomeBenefits": (
        "IncomeBenefitsID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "InformationDate:D!",
        "IncomeFromAnySource:I:1.8", "TotalMonthlyIncome:M", "Earned:I:1.7", "EarnedAmount:M",
        "Unemployment:I:1.7", "UnemploymentAmount:M", "SSI:I:1.7", "SSIAmount:M",
        "SSDI:I:1.7", "SSDIAmount:M", "VADisabilityService:I:1.7",
        "VADisabilityServiceAmount:M", "VADisabilityNonService:I:1.7",
        "VADisabilityNonServiceAmount:M", "PrivateDisability:I:1.7",
        "PrivateDisabilityAmount:M", "WorkersComp:I:1.7", "WorkersCompAmount:M", "TANF:I:1.7",
        "TANFAmount:M", "GA:I:1.7", "GAAmount:M", "SocSecRetirement:I:1.7",
        "SocSecRetirementAmount:M", "Pension:I:1.7", "PensionAmount:M", "ChildSupport:I:1.7",
        "ChildSupportAmount:M", "Alimony:I:1.7", "AlimonyAmount:M", "OtherIncomeSource:I:1.7",
        "OtherIncomeAmount:M", "OtherIncomeSourceIdentify:S50", "BenefitsFromAnySource:I:1.8",
        "SNAP:I:1.7", "WIC:I:1.7", "TANFChildCare:I:1.7", "TANFTransportation:I:1.7",
        "OtherTANF:I:1.7", "OtherBenefitsSource:I:1.7", "OtherBenefitsSourceIdentify:S50",
        "InsuranceFromAnySource:I:1.8", "Medicaid:I:1.7", "NoMedicaidReason:I",
        "Medicare:I:1.7", "NoMedicareReason:I", "SCHIP:I:1.7", "NoSCHIPReason:I",
        "VHAServices:I:1.7", "NoVHAReason:I", "EmployerProvided:I:1.7",
        "NoEmployerProvidedReason:I", "COBRA:I:1.7", "NoCOBRAReason:I", "PrivatePay:I:1.7",
        "NoPrivatePayReason:I", "StateHealthIns:I:1.7", "NoStateHealthInsReason:I",
        "IndianHealthServices:I:1.7", "NoIndianHealthServicesReason:I", "OtherInsurance:I:1.7",
        "OtherInsuranceIdentify:S50", "ADAP:I:1.8", "NoADAPReason:I", "RyanWhiteMedDent:I:1.8",
        "NoRyanWhiteReason:I", "ConnectionWithSOAR:I:1.8", "DataCollectionStage:I:5.03.1!",
        *_TAIL,
    ),
    "HealthAndDV": (
        "HealthAndDVID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "InformationDate:D!",
        "DomesticViolenceSurvivor:I:1.8", "WhenOccurred:I:4.11.A", "CurrentlyFleeing:I:1.8",
        "GeneralHealthStatus:I:R7.1", "DentalHealthStatus:I:R7.1",
        "MentalHealthStatus:I:R7.1", "PregnancyStatus:I:1.8", "DueDate:D",
        "DataCollectionStage:I:5.03.1!", *_TAIL,
    ),
    "EmploymentEducation": (
        "EmploymentEducationID:S32!", "EnrollmentID:S32!", "PersonalID:S32!",
        "InformationDate:D!", "LastGradeCompleted:I", "SchoolStatus:I", "Employed:I:1.8",
        "EmploymentType:I", "NotEmployedReason:I", "DataCollectionStage:I:5.03.1!", *_TAIL,
    ),
    "Disabilities": (
        "DisabilitiesID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "InformationDate:D!",
        "DisabilityType:I:1.3!", "DisabilityResponse:I:4.10.2!", "IndefiniteAndImpairs:I:1.8",
        "TCellCountAvailable:I:1.8", "TCellCount:I", "TCellSource:I",
        "ViralLoadAvailable:I", "ViralLoad:I", "ViralLoadSource:I", "AntiRetroviral:I:1.8",
        "DataCollectionStage:I:5.03.1!", *_TAIL,
    ),
    "Services": (
        "ServicesID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "DateProvided:D!",
        "RecordType:I:RecordType!", "TypeProvided:I!", "OtherTypeProvided:S50",
        "MovingOnOtherType:S50", "SubTypeProvided:I", "FAAmount:M", "FAStartDate:D",
        "FAEndDate:D", "ReferralOutcome:I", *_TAIL,
    ),
    "CurrentLivingSituation": (
        "CurrentLivingSitID:S32!", "EnrollmentID:S32!", "PersonalID:S32!",
        "InformationDate:D!", "CurrentLivingSituation:I!", "CLSSubsidyType:I",
        "VerifiedBy:S100", "LeaveSituation14Days:I:1.8", "SubsequentResidence:I:1.8",
        "ResourcesToObtain:I:1.8", "LeaseOwn60Day:I:1.8", "MovedTwoOrMore:I:1.8",
        "LocationDetails:S250", *_TAIL,
    ),
    "Assessment": (
        "AssessmentID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "AssessmentDate:D!",
        "AssessmentLocation:S250!", "AssessmentType:I:4.19.3!", "AssessmentLevel:I:4.19.4!",
        "PrioritizationStatus:I:4.19.7!", *_TAIL,
    ),
    "AssessmentQuestions": (
        "AssessmentQuestionID:S32!", "AssessmentID:S32!", "EnrollmentID:S32!",
        "PersonalID:S32!", "AssessmentQuestionGroup:S250", "AssessmentQuestionOrder:I",
        "AssessmentQuestion:S250!", "AssessmentAnswer:S500", *_TAIL,
    ),
    "AssessmentResults": (
        "AssessmentResultID:S32!", "AssessmentID:S32!", "EnrollmentID:S32!",
        "PersonalID:S32!", "AssessmentResultType:S250!", "AssessmentResult:S250", *_TAIL,
    ),
    "Event": (
        "EventID:S32!", "EnrollmentID:S32!", "PersonalID:S32!", "EventDate:D!",
        "Event:I:4.20.2!", "ProbSolDivRRResult:I:1.7", "ReferralCaseManageAfter:I:1.7",
        "LocationCrisisOrPHHousing:S250", "ReferralResult:I", "ResultDate:D", *_TAIL,
    ),
    "YouthEducationStatus": (
        "YouthEducationStatusID:S32!", "EnrollmentID:S32!", "PersonalID:S32!",
        "InformationDate:D!", "CurrentSchoolAttend:I", "MostRecentEdStatus:I",
        "CurrentEdStatus:I", "DataCollectionStage:I:5.03.1!", *_TAIL,
    ),
}

# fmt: on

GENDER_COLUMNS_FY2024: tuple[str, ...] = (
    "Woman",
    "Man",
    "NonBinary",
    "CulturallySpecific",
    "Transgender",
    "Questioning",
    "DifferentIdentity",
    "GenderNone",
    "DifferentIdentityText",
)
"""The nine FY2024 gender columns FY2026 removed."""

ENROLLMENT_DROPPED_FY2026: tuple[str, ...] = (
    "SexualOrientation",
    "SexualOrientationOther",
    "TranslationNeeded",
    "PreferredLanguage",
    "PreferredLanguageDifferent",
)
"""FY2024 Enrollment columns FY2026 removed."""

RENAMED_FY2026: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"Client": MappingProxyType({"HispanicLatinaeo": "HispanicLatinao"})}
)
"""FY2024 name → FY2026 name, per file."""


def _fy2026_text() -> dict[str, tuple[str, ...]]:
    out = dict(_FY2024_TEXT)
    client: list[str] = []
    for text in _FY2024_TEXT["Client"]:
        name = text.split(":", 1)[0]
        if name in GENDER_COLUMNS_FY2024:
            continue
        if name == "HispanicLatinaeo":
            text = text.replace("HispanicLatinaeo", "HispanicLatinao")
        client.append(text)
        if name == "DOBDataQuality":
            client.append("Sex:I:4.21")
    out["Client"] = tuple(client)
    enrollment = [
        t for t in _FY2024_TEXT["Enrollment"] if t.split(":", 1)[0] not in ENROLLMENT_DROPPED_FY2026
    ]
    at = next(i for i, t in enumerate(enrollment) if t.startswith("DateCreated:"))
    enrollment.insert(at, "MentalHealthConsultation:I:1.8")
    out["Enrollment"] = tuple(enrollment)
    out["Export"] = tuple(
        "SourceID:S350" if t.startswith("SourceID:") else t for t in _FY2024_TEXT["Export"]
    )
    return out


FILES: tuple[str, ...] = (
    "Export",
    "Organization",
    "User",
    "Project",
    "Funder",
    "ProjectCoC",
    "Inventory",
    "Affiliation",
    "HMISParticipation",
    "CEParticipation",
    "Client",
    "Enrollment",
    "Exit",
    "IncomeBenefits",
    "HealthAndDV",
    "EmploymentEducation",
    "Disabilities",
    "Services",
    "CurrentLivingSituation",
    "Assessment",
    "AssessmentQuestions",
    "AssessmentResults",
    "Event",
    "YouthEducationStatus",
)
"""The 24 files of an export, in the spec's order (descriptors before client data)."""

_FY2026_TEXT = _fy2026_text()

COLUMNS: Mapping[str, Mapping[str, tuple[Column, ...]]] = MappingProxyType(
    {
        FY2024: MappingProxyType({f: tuple(_col(t) for t in _FY2024_TEXT[f]) for f in FILES}),
        FY2026: MappingProxyType({f: tuple(_col(t) for t in _FY2026_TEXT[f]) for f in FILES}),
    }
)
"""Per version, per file: the ordered columns."""


def columns(version: str, file: str) -> tuple[Column, ...]:
    """The ordered columns of ``file`` (``"Client"``) in ``version`` (``"2024"``/``"2026"``)."""
    return COLUMNS[version][file]


def column_names(version: str, file: str) -> tuple[str, ...]:
    """The ordered column names of a file in a version."""
    return tuple(c.name for c in COLUMNS[version][file])


def rename_column(file: str, name: str, from_version: str, to_version: str) -> str:
    """The name a column of ``from_version`` has in ``to_version`` (same name if unchanged)."""
    renamed = RENAMED_FY2026.get(file, {})
    if from_version == FY2024 and to_version == FY2026:
        return renamed.get(name, name)
    if from_version == FY2026 and to_version == FY2024:
        back = {v: k for k, v in renamed.items()}
        return back.get(name, name)
    return name


def renamed_columns(file: str) -> Mapping[str, str]:
    """A file's renamed columns, each version's name → the other version's (both ways)."""
    renamed = RENAMED_FY2026.get(file, {})
    return {**renamed, **{new: old for old, new in renamed.items()}}


# ---- relations ------------------------------------------------------------------------------

KEY_COLUMN: Mapping[str, str] = MappingProxyType({f: COLUMNS[FY2024][f][0].name for f in FILES})
"""The primary key column (the first column) of each file."""

ENROLLMENT_FILES: frozenset[str] = frozenset(
    f
    for f in FILES
    if f != "Enrollment" and any(c.name == "EnrollmentID" for c in COLUMNS[FY2024][f])
)
"""Files whose rows belong to an enrollment (and through it to a client)."""

PROJECT_FILES: frozenset[str] = frozenset(
    {"Funder", "ProjectCoC", "Inventory", "Affiliation", "HMISParticipation", "CEParticipation"}
)
"""Project descriptor files keyed to a project."""

RECORD_KINDS: Mapping[str, str] = MappingProxyType(
    {
        **{f: f"hmis.{f}" for f in FILES},
        "Client": "client",
        "Enrollment": "enrollment",
        "Exit": "exit",
        "Services": "service",
    }
)
"""The store kind each file's rows become."""

TYPED_FILES: frozenset[str] = frozenset({"Client", "Enrollment", "Exit", "Services"})
"""Files mapped to canonical typed records rather than generic source rows."""

DATE_OPEN_ENDED: frozenset[str] = frozenset(
    {
        "OperatingEndDate",
        "EndDate",
        "InventoryEndDate",
        "HMISParticipationStatusEndDate",
        "CEParticipationStatusEndDate",
        "DueDate",
        "FAEndDate",
        "ExportEndDate",
        "AftercareDate",
    }
)
"""Date columns that may lie in the future (end dates, due dates)."""

EXPORT_ID_COLUMN = "ExportID"
"""Transport metadata: rows are stored without it and get the new export's id on export."""

LOCATION_COLUMNS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "CurrentLivingSituation": frozenset({"LocationDetails"}),
        "Event": frozenset({"LocationCrisisOrPHHousing"}),
        "Assessment": frozenset({"AssessmentLocation"}),
        "ProjectCoC": frozenset({"Address1", "Address2", "City", "State", "ZIP", "Geocode"}),
    }
)
"""Columns that reveal where a person is or stays (withheld for a client fleeing DV)."""


# ---- consent categories -------------------------------------------------------------------

# fmt: off
_BASE_CATEGORY: Mapping[str, str] = MappingProxyType(
    {
        "Export": "housing", "Organization": "housing", "User": "identity", "Project": "housing",
        "Funder": "housing", "ProjectCoC": "housing", "Inventory": "housing",
        "Affiliation": "housing", "HMISParticipation": "housing", "CEParticipation": "housing",
        "Client": "identity", "Enrollment": "housing", "Exit": "housing",
        "IncomeBenefits": "income", "HealthAndDV": "health", "EmploymentEducation": "income",
        "Disabilities": "health", "Services": "services", "CurrentLivingSituation": "housing",
        "Assessment": "housing", "AssessmentQuestions": "housing",
        "AssessmentResults": "housing", "Event": "housing", "YouthEducationStatus": "demographics",
    }
)

_CATEGORY_OVERRIDES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "Project": {"HOPWAMedAssistedLivingFac": "hiv"},
        "Client": {
            **{
                c: "demographics"
                for c in (
                    "AmIndAKNative", "Asian", "BlackAfAmerican", "HispanicLatinaeo",
                    "HispanicLatinao", "MidEastNAfrican", "NativeHIPacific", "White", "RaceNone",
                    "AdditionalRaceEthnicity", *GENDER_COLUMNS_FY2024, "Sex", "VeteranStatus",
                    "YearEnteredService", "YearSeparated", "WorldWarII", "KoreanWar",
                    "VietnamWar", "DesertStorm", "AfghanistanOEF", "IraqOIF", "IraqOND",
                    "OtherTheater", "MilitaryBranch", "DischargeStatus",
                )
            },
        },
        "Enrollment": {
            "DisablingCondition": "health",
            "PhysicalDisabilityFam": "health",
            "DisabledHoH": "health",
            "CurrentPregnant": "health",
            "MentalHealthDisorderFam": "behavioral_health",
            "MentalHealthConsultation": "behavioral_health",
            "AlcoholDrugUseDisorderFam": "substance_use",
            "SexualOrientation": "demographics",
            "SexualOrientationOther": "demographics",
            "TranslationNeeded": "demographics",
            "PreferredLanguage": "demographics",
            "PreferredLanguageDifferent": "demographics",
            "PercentAMI": "income",
            "AnnualPercentAMI": "income",
            "InsufficientIncome": "income",
            "UnemploymentFam": "income",
        },
        "Exit": {
            **{
                c: "behavioral_health"
                for c in (
                    "CounselingReceived", "IndividualCounseling", "FamilyCounseling",
                    "GroupCounseling", "SessionCountAtExit", "PostExitCounselingPlan",
                    "SessionsInPlan",
                )
            },
            **{
                c: "dv"
                for c in (
                    "ExchangeForSex", "ExchangeForSexPastThreeMonths", "CountOfExchangeForSex",
                    "AskedOrForcedToExchangeForSex",
                    "AskedOrForcedToExchangeForSexPastThreeMonths", "WorkplaceViolenceThreats",
                    "WorkplacePromiseDifference", "CoercedToContinueWork",
                    "LaborExploitPastThreeMonths",
                )
            },
        },
        "IncomeBenefits": {
            **{
                c: "health"
                for c in (
                    "InsuranceFromAnySource", "Medicaid", "NoMedicaidReason", "Medicare",
                    "NoMedicareReason", "SCHIP", "NoSCHIPReason", "VHAServices", "NoVHAReason",
                    "EmployerProvided", "NoEmployerProvidedReason", "COBRA", "NoCOBRAReason",
                    "PrivatePay", "NoPrivatePayReason", "StateHealthIns",
                    "NoStateHealthInsReason", "IndianHealthServices",
                    "NoIndianHealthServicesReason", "OtherInsurance", "OtherInsuranceIdentify",
                )
            },
            "ADAP": "hiv",
            "NoADAPReason": "hiv",
            "RyanWhiteMedDent": "hiv",
            "NoRyanWhiteReason": "hiv",
        },
        "HealthAndDV": {
            "DomesticViolenceSurvivor": "dv",
            "WhenOccurred": "dv",
            "CurrentlyFleeing": "dv",
            "MentalHealthStatus": "behavioral_health",
        },
        "EmploymentEducation": {
            "LastGradeCompleted": "demographics",
            "SchoolStatus": "demographics",
        },
    }
)

# fmt: on

SENSITIVE_DISABILITY: Mapping[str, str] = MappingProxyType(
    {"8": "hiv", "9": "behavioral_health", "10": "substance_use"}
)
"""DisabilityType → the sensitive category of the whole Disabilities row."""

HIV_DISABILITY_COLUMNS: frozenset[str] = frozenset(
    {
        "TCellCountAvailable",
        "TCellCount",
        "TCellSource",
        "ViralLoadAvailable",
        "ViralLoad",
        "ViralLoadSource",
        "AntiRetroviral",
    }
)
"""Disabilities columns that exist for HIV/AIDS only (always ``hiv``)."""

SENSITIVE_RECORD_TYPES: Mapping[str, str] = MappingProxyType(
    {"143": "hiv", "151": "hiv", "141": "behavioral_health", "161": "behavioral_health"}
)
"""Services RecordType → sensitive category: HOPWA services and financial assistance are
``hiv``; PATH (serious mental illness) services and referrals are ``behavioral_health``."""


def column_category(file: str, column: str) -> str:
    """The consent category of one column of a file."""
    if file == "Disabilities" and column in HIV_DISABILITY_COLUMNS:
        return "hiv"
    return _CATEGORY_OVERRIDES.get(file, {}).get(column, _BASE_CATEGORY[file])


def file_categories(version: str, file: str) -> Mapping[str, str]:
    """Column → category for every column of a file (a shared, read-only mapping)."""
    return _FILE_CATEGORIES[version][file]


def disability_categories(version: str, category: str) -> Mapping[str, str]:
    """Column → category for a Disabilities row of a sensitive type: every column carries it
    (the row's existence reveals the condition)."""
    return _DISABILITY_CATEGORIES[version][category]


_FILE_CATEGORIES: dict[str, dict[str, Mapping[str, str]]] = {
    v: {
        f: MappingProxyType({c.name: column_category(f, c.name) for c in COLUMNS[v][f]})
        for f in FILES
    }
    for v in VERSIONS
}
_DISABILITY_CATEGORIES: dict[str, dict[str, Mapping[str, str]]] = {
    v: {
        cat: MappingProxyType({c.name: cat for c in COLUMNS[v]["Disabilities"]})
        for cat in set(SENSITIVE_DISABILITY.values())
    }
    for v in VERSIONS
}

METADATA_COLUMNS: frozenset[str] = frozenset(
    {"DateCreated", "DateUpdated", "UserID", "DateDeleted", "ExportID"}
)
"""Columns every data file ends with (record metadata, not client data)."""


def link_columns(file: str) -> frozenset[str]:
    """The key and foreign-key columns of a file (ids written whenever a row is released)."""
    names = {c.name for c in COLUMNS[FY2024][file] if c.name.endswith("ID") and c.type == "S"}
    return frozenset(names | METADATA_COLUMNS)
